from django.urls import path

from incidents import views

urlpatterns = [
    path("dashboard/incidents.json", views.incidents_json, name="dashboard-incidents"),
    path("dashboard/incidents/<int:incident_id>.json", views.incident_json, name="dashboard-incident"),
    path("dashboard/cameras.geojson", views.cameras_geojson, name="dashboard-cameras"),
    path("dashboard/centers.geojson", views.centers_geojson, name="dashboard-centers"),
    path("incidents/<int:incident_id>/acknowledge/", views.acknowledge, name="incident-acknowledge"),
    path("incidents/<int:incident_id>/assign/", views.assign, name="incident-assign"),
    path("incidents/<int:incident_id>/note/", views.note, name="incident-note"),
    path("incidents/<int:incident_id>/dispatch/", views.dispatch, name="incident-dispatch"),
    path("incidents/<int:incident_id>/close/", views.close, name="incident-close"),
]
