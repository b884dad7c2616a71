"""``python -m src fit|test|validate --config ...``: the raw LightningCLI (``make train`` wraps it)."""

from src.cli import main

if __name__ == "__main__":
    main()
