from django.apps import AppConfig


class AegisConfig(AppConfig):
    name = "aegis"
    verbose_name = "Access"

    def ready(self) -> None:
        from aegis import checks  # noqa: F401  (registers the system checks)
