"""What the browser tests share."""


def sign_in(page, landing: str, *, username: str = "ana", password: str = "a-long-password") -> None:  # noqa: S107 (a test user)
    """Signs in through the login form the page shows, then waits to land on `landing`."""
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(landing)
