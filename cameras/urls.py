from django.urls import path

from cameras import clip_views

urlpatterns = [
    path("incidents/<int:incident_id>/clips/", clip_views.incident_clips, name="incident-clips"),
    path("cameras/clips/due-soon.json", clip_views.clips_due_json, name="clips-due-soon"),
    path("cameras/clips/<int:clip_id>/", clip_views.clip_status, name="clip-status"),
    path("cameras/clips/<int:clip_id>/download/", clip_views.clip_download, name="clip-download"),
]
