from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The demo host site: its pages and the `runstack` development command."""

    name = "project"
    verbose_name = "Demo site"
