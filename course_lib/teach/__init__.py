"Teaching tools: exercise checkers, running/releasing/grading notebooks, the course site. Nothing here imports the `course` CLI."
