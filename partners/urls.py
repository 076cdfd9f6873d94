from django.urls import path

from partners import api
from smartcity.concurrency import in_thread_pool

urlpatterns = [
    path("events/", in_thread_pool(api.EventListCreateView.as_view()), name="api-events"),
    path("events/<int:incident_id>/", in_thread_pool(api.EventDetailView.as_view()), name="api-event-detail"),
    path(
        "events/<int:incident_id>/locations/",
        in_thread_pool(api.EventLocationView.as_view()),
        name="api-event-locations",
    ),
    path(
        "events/<int:incident_id>/cancel/",
        in_thread_pool(api.EventCancelView.as_view()),
        name="api-event-cancel",
    ),
    path("cap/", in_thread_pool(api.CapAlertView.as_view()), name="api-cap"),
]
