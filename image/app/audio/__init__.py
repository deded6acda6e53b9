"""Audio: uploads, decoding, the speech server client, transcription with speakers
(chunking, stitching, merging), exports and background jobs."""
