"""`python -m service` = the `curate` command."""

from service.cli.main import app

if __name__ == "__main__":  # spawned workers re-import this module: never start the CLI twice
    app()
