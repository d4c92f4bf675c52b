"""Shared test setup: tests run on the CPU, offline, with the plain-text progress bar."""
import os
os.environ.setdefault('COURSE_DEVICE', 'cpu')
os.environ.setdefault('COURSE_PROGRESS', 'text')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
