from nasx.cli import main

if __name__ == "__main__":  # worker processes (executor.workers) import the main module again
    main()
