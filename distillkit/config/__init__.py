"""Config loading: YAML with tags, overrides, validation, and located errors."""
from .loader import Config, load_config, load_yaml_file
from .paths import get_path, join_path
from .tags import import_get

__all__ = ["Config", "load_config", "load_yaml_file", "get_path", "join_path", "import_get"]
