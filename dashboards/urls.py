from django.urls import path

from . import views

app_name = "dashboards"

urlpatterns = [
    path("units/<str:code>/", views.unit_dashboard, name="unit"),
    path("units/<str:code>/charts.json", views.unit_charts, name="unit-charts"),
    path("units/<str:code>/<slug:measure>/table/", views.unit_panel_table, name="unit-table"),
    path("units/<str:code>/<slug:measure>.csv", views.unit_series_csv, name="unit-csv"),
    path("departments/<slug:code>/", views.department_dashboard, name="department"),
    path("departments/<slug:code>/matrix.csv", views.department_matrix_csv, name="department-csv"),
    path("divisions/<slug:code>/", views.division_dashboard, name="division"),
    path("divisions/<slug:code>/matrix.csv", views.division_matrix_csv, name="division-csv"),
    path(
        "funnels/<str:level>/<slug:code>/<slug:measure>/",
        views.funnel_fragment,
        name="funnel",
    ),
    path("measures/<slug:code>/", views.measure_page, name="measure"),
]
