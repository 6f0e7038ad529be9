from batchjobs.cli import entry

entry()
