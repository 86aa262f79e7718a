from django.urls import path

from . import views

app_name = "measures"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    path("imports/", views.batch_list, name="batch-list"),
    path("imports/upload/", views.upload, name="upload"),
    path("imports/<int:pk>/", views.batch_detail, name="batch-detail"),
    path("imports/<int:pk>/progress/", views.batch_progress, name="batch-progress"),
    path("imports/<int:pk>/revert/", views.batch_revert, name="batch-revert"),
    path("imports/<int:pk>/report.csv", views.batch_report, name="batch-report"),
]
