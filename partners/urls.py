from django.urls import path

from partners import api

urlpatterns = [
    path("events/", api.EventListCreateView.as_view(), name="api-events"),
    path("events/<int:incident_id>/", api.EventDetailView.as_view(), name="api-event-detail"),
    path(
        "events/<int:incident_id>/locations/",
        api.EventLocationView.as_view(),
        name="api-event-locations",
    ),
    path(
        "events/<int:incident_id>/cancel/",
        api.EventCancelView.as_view(),
        name="api-event-cancel",
    ),
    path("cap/", api.CapAlertView.as_view(), name="api-cap"),
]
