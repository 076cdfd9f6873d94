from django.apps import AppConfig


class CamerasConfig(AppConfig):
    name = "cameras"
    default_auto_field = "django.db.models.BigAutoField"
