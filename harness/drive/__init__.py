"""Drive: agents inside the hosts make the socket calls of the timeline at scheduled times."""
