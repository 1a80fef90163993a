"""The server answers DescribeTrainingTasks through the SDK on every backend."""

from __future__ import annotations

from tencentcloud.tione.v20211111 import models

from tests.live import Server


def test_describe_training_tasks_empty_list(any_server: Server) -> None:
    resp = any_server.client().DescribeTrainingTasks(models.DescribeTrainingTasksRequest())
    assert resp.TotalCount == 0
    assert resp.TrainingTaskSet == []
