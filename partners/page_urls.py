"""Pages and operator endpoints of sharing (the partner REST API is in partners/urls.py)."""

from django.urls import path

from partners import views

urlpatterns = [
    path("shared/<str:token>/", views.shared_viewer, name="shared-viewer"),
    path("shared/<str:token>/state.json", views.shared_state, name="shared-state"),
    path("shared/<str:token>/clips/<int:clip_id>/", views.shared_clip_download, name="shared-clip"),
    path("incidents/<int:incident_id>/shares.json", views.incident_shares, name="incident-shares"),
    path("incidents/<int:incident_id>/shares/", views.share_now, name="incident-share-now"),
    path("shares/<int:share_id>/extend/", views.extend, name="share-extend"),
    path("shares/<int:share_id>/revoke/", views.revoke, name="share-revoke"),
]
