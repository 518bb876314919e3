"""The top floor: the `streaming-whisper` command (`cli`) and what it starts: the local stack
behind `make run` (`launcher`), one worker process per GPU (`gpu_workers`), and child processes
that stop with their parent (`children`). It may import every other package; the shared ground
floor (`service/`) imports nothing above it."""
