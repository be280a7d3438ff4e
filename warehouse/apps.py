from django.apps import AppConfig


class WarehouseConfig(AppConfig):
    name = "warehouse"

    def ready(self) -> None:
        from warehouse import signals  # noqa: F401
