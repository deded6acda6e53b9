"""Known speakers: a library of enrolled voices, and names for detected speakers.

    library.py     the voice library (SQLite under DATA_DIR): people and their prints
    matching.py    detected prints against the library: cosine, one name per speaker
    thresholds.py  the calibrated match threshold of each embedding model
    naming.py      a transcription result with its speakers named
    enroll.py      a print from an uploaded sample or from a finished job

Voiceprints are biometric data: nothing here logs a name, a score or a vector.
"""
