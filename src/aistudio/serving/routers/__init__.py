"""The HTTP surface, one router per area; none imports the app (the app includes them)."""
