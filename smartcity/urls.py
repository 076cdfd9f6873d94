from django.contrib import admin
from django.urls import path

from smartcity import health

admin.site.site_header = "Smart City Safety Net"
admin.site.site_title = "Smart City Safety Net"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
