"""The installed version of Curate."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("curate")
except PackageNotFoundError:  # running from a source tree without installing
    VERSION = "0+unknown"
