"""eanet_course."""
