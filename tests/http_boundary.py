"""A transport adapter that watches calls at the HTTP boundary: how many, to where, and how
many were out at once. Each watched call is held a moment, so calls that may overlap do."""

import threading
import time
from collections import Counter
from collections.abc import Callable

import requests


class Overlapping(requests.adapters.HTTPAdapter):
    """Every call reaches the simulator; those `watch` picks are held `pause` seconds and
    counted, with the most of them out at once. A watched GET whose URL holds `fail` answers
    500 instead."""

    def __init__(
        self,
        pause: float = 0.02,
        watch: Callable[[requests.PreparedRequest], bool] = lambda request: True,
        fail: str = "",
    ) -> None:
        super().__init__()
        self.pause, self.watch, self.fail = pause, watch, fail
        self.lock = threading.Lock()
        self.out = self.most = 0
        self.urls: list[str] = []

    @property
    def calls(self) -> int:
        return len(self.urls)

    def calls_to(self, part: str) -> int:
        return sum(part in url for url in self.urls)

    def paths(self) -> Counter[str]:
        """Calls by the last segment of their path (`app-servers`, or a server's id)."""
        return Counter(url.split("?")[0].rsplit("/", 1)[-1] for url in self.urls)

    def send(self, request, *args, **kwargs):
        if not self.watch(request):
            return super().send(request, *args, **kwargs)
        with self.lock:
            self.out += 1
            self.most = max(self.most, self.out)
            self.urls.append(request.url)
        try:
            time.sleep(self.pause)
            if self.fail and request.method == "GET" and self.fail in request.url:
                answer = requests.Response()
                answer.status_code, answer._content, answer.url = 500, b"{}", request.url
                return answer
            return super().send(request, *args, **kwargs)
        finally:
            with self.lock:
                self.out -= 1
