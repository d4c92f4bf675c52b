"""Loaded by Python at start-up when this folder is on PYTHONPATH (make test does that).

With COURSE_BLOCK_NETWORK=1 it turns on course_lib's network guard before any other code runs, so a
hidden download in a test or a notebook fails loudly instead of landing."""
import os
if os.environ.get('COURSE_BLOCK_NETWORK', '').lower() in ('1', 'true', 'yes'):
    try:
        from course_lib.offline import block_network
    except ImportError as e:  # the course is not installed yet: nothing to guard
        print(f"[offline guard] not active: {e}")
    else:
        block_network()
