"""memento-recsys core: encoders, case bank, soft-Q policy over cases, learner, frozen LLM.

This package never imports fastapi, mlflow or mcp (those live in `serving`, `training` and
`agent` respectively).
"""

__all__: list[str] = []
__version__ = "0.1.0"
