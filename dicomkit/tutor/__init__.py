"""The tutor: the course (content as data), the lesson runner, progress, and named checks.

Nothing heavy is imported here, so ``dicomkit --help`` stays fast.
"""
