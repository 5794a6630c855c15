"""Delayed ground-truth feedback: pairing, delay, batching, bounded queue, one warning per kind."""

from __future__ import annotations

import threading
import time

from replay.feedback import FeedbackPoster, feedback_items
from replay.report import RunStats
from replay.sender import Outcome


def test_items_pair_ids_with_numeric_actuals_only():
    assert feedback_items(["a", "b", "c"], [1.5, "x", 3]) == [
        {"id": "a", "actual": 1.5},
        {"id": "c", "actual": 3},
    ]
    assert feedback_items(["a"], [1.0, 2.0]) == []  # mismatched response: no guessing
    assert feedback_items(None, [1.0]) == []


class _Recorder:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[float, list]] = []
        self.lock = threading.Lock()

    def __call__(self, path: str, payload: dict) -> Outcome:
        with self.lock:
            self.posts.append((time.monotonic(), payload["items"]))
        return Outcome(self.status)


def test_feedback_waits_for_the_delay_then_posts_in_batches():
    post = _Recorder()
    stats = RunStats()
    poster = FeedbackPoster(post, delay=0.2, stats=stats, url="u")
    poster.start()
    offered_at = time.monotonic()
    poster.offer([{"id": "a", "actual": 1}, {"id": "b", "actual": 2}])
    poster.close()
    assert [items for _, items in post.posts] == [
        [{"id": "a", "actual": 1}, {"id": "b", "actual": 2}]
    ]
    assert post.posts[0][0] - offered_at >= 0.2
    assert stats.feedback_sent == 2


def test_full_queue_drops_and_counts_without_blocking():
    stats = RunStats()
    poster = FeedbackPoster(_Recorder(), delay=60, stats=stats, url="u", max_pending=3)
    poster.start()
    poster.offer([{"id": str(i), "actual": i} for i in range(5)])
    poster.close(abandon=True)
    assert stats.feedback_dropped == 5  # 2 overflowed, 3 abandoned at close
    assert stats.feedback_sent == 0


def test_404_is_counted_per_post_and_warned_once():
    warnings: list[str] = []
    stats = RunStats()
    poster = FeedbackPoster(_Recorder(404), delay=0, stats=stats, url="u", warn=warnings.append)
    poster.start()
    for i in range(3):
        poster.offer([{"id": str(i), "actual": i}])
        time.sleep(0.02)
    poster.close()
    assert stats.feedback_failed == 3
    assert sum(stats.feedback_status_counts.values()) >= 1
    assert len(warnings) == 1
    assert "404" in warnings[0]
