"""The recommendation domain: state encoder, rewards, candidate sources, the pipeline."""
