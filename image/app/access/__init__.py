"""Who may use spark-control and how: the token and session cookie (`auth`, `sessions`),
login throttling (`throttle`), the allowed Host names (`hosts`) and the security
headers every answer carries (`headers`)."""
