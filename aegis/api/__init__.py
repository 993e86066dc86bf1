"""The project's `/api/v1/` routes (`urls`) and the statistics that read every app (`stats`).

The plumbing the apps' viewsets share is in `aegis.core.api`.
"""
