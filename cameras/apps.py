from django.apps import AppConfig


class CamerasConfig(AppConfig):
    name = "cameras"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cameras import sessions  # noqa: F401  (connects the login receivers)
