from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from cameras import views as camera_views
from incidents import views as incident_views
from smartcity import health, metrics

admin.site.site_header = "Smart City Safety Net"
admin.site.site_title = "Smart City Safety Net"

urlpatterns = [
    path("", incident_views.dashboard, name="dashboard"),
    path("centres/", camera_views.overview, name="overview"),
    path("", include("incidents.urls")),
    path("", include("partners.page_urls")),
    path("", include("cameras.urls")),
    path("audit/", include("audit.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("logout/everywhere/", camera_views.logout_everywhere, name="logout-everywhere"),
    path("cameras/<int:camera_id>/snapshot.jpg", camera_views.snapshot, name="camera-snapshot"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("partners.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
