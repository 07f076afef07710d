from .cli import main

# Guarded: the reader processes (multiprocessing "spawn") import the parent's main module.
if __name__ == "__main__":
    raise SystemExit(main())
