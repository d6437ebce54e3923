"""The `memento` command line: composes the sub-commands that each package owns."""
