"""Speech hosts as one pool: each member's own registry, watchdog, overlay manager,
host health and install manager (members.py); the work spread over them (dispatch.py);
a member taken out of rotation before it is changed (drain.py)."""
