from django.urls import path

from audit import views

urlpatterns = [
    path("ledger/", views.ledger, name="audit-ledger"),
]
