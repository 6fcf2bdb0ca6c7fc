from nasx.cli import main

if __name__ == "__main__":  # a guard: worker processes (executor.workers) import this module again
    main()
