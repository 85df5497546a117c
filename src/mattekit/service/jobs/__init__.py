"""Video jobs: upload a clip, poll its progress, fetch the result, or cancel.

    POST   /api/v1/jobs               multipart: file (the video) [+ bg_file] + options → 202 {id, ...}
    GET    /api/v1/jobs/{id}          state (queued|running|done|failed|cancelled) and progress
    GET    /api/v1/jobs/{id}/result   the output file once done (409 before)
    DELETE /api/v1/jobs/{id}          cancel a queued/running job, or delete a finished one's result

Jobs run in their own small bounded pool (``MATTEKIT_JOB_WORKERS``, default 1, plus
``MATTEKIT_JOB_QUEUE`` waiting, default 4), so a long video never takes the slots stills need;
the engine underneath is the same. Each job has a private folder under a temporary directory;
finished jobs (and their files) are deleted ``MATTEKIT_JOB_TTL`` seconds after they end.

Parts: :mod:`.store` keeps the jobs (and their records), :mod:`.runner` does a job's work,
:mod:`.routes` answers HTTP, :mod:`.webhooks` tells a client's URL when its job has ended, and
:mod:`.ray_store` keeps the jobs in a Ray cluster instead (``MATTEKIT_RAY_ADDRESS``). The settings are :class:`~mattekit.service.settings.JobSettings`
(``Settings.jobs``).

Several server processes: set ``MATTEKIT_JOB_DIR`` to one folder they all share (``mattekit
serve --processes N`` makes one). Each job then keeps its state in ``job.json`` in its folder,
so any process answers ``GET`` for it and serves its result; a ``DELETE`` that reaches another
process leaves a ``cancel`` file its owner sees between frames.

| variable                        | default            | meaning                                   |
|---------------------------------|--------------------|-------------------------------------------|
| ``MATTEKIT_JOB_MAX_UPLOAD_BYTES`` | 104857600 (100 MiB) | video upload limit (413)                |
| ``MATTEKIT_JOB_MAX_SECONDS``      | 120                | longest clip (after start/end) accepted (422) |
| ``MATTEKIT_JOB_TTL``              | 3600               | seconds a finished job and its result are kept |
| ``MATTEKIT_JOB_WORKERS``          | 1                  | videos processed at once                  |
| ``MATTEKIT_JOB_QUEUE``            | 4                  | videos waiting before 503 Busy            |
| ``MATTEKIT_JOB_TIMEOUT``          | 1800               | seconds a job may run (from its first frame) before it fails; 0: none |
| ``MATTEKIT_JOB_UPLOAD_TIMEOUT``   | 300                | seconds a video upload may take to arrive (408); 0: none |
| ``MATTEKIT_JOB_DISK_BYTES``       | 10737418240 (10 GiB) | every job's files together: a new upload is refused (507) when one more would not fit, a job whose output passes it fails; 0: none |
| ``MATTEKIT_JOB_DIR``              | (a private temp folder) | a folder shared by every server process (jobs findable from any) |
| ``MATTEKIT_RAY_ADDRESS``          | (none)             | a Ray cluster the jobs run and live on (:mod:`.ray_store`; needs a shared ``MATTEKIT_JOB_DIR``) |
| ``MATTEKIT_JOB_STORAGE``          | (none)             | on a cluster without a shared folder: object storage for uploads and results (``s3://…``) |
| ``MATTEKIT_JOB_CHUNK_SECONDS``    | 10                 | on a cluster: the length of the chunks a clip is cut into |
| ``MATTEKIT_WEBHOOK_HOSTS``        | (none)             | hosts a job's ``webhook_url`` may name (none: no webhooks; :mod:`.webhooks`) |
| ``MATTEKIT_WEBHOOK_SECRET``       | (none)             | the key webhook bodies are signed with (HMAC-SHA256); required with hosts |
| ``MATTEKIT_WEBHOOK_ATTEMPTS``     | 5                  | tries per webhook (retried on no answer, 429, 5xx) |
| ``MATTEKIT_WEBHOOK_BACKOFF``      | 1                  | seconds before the first retry, doubling after each |
"""
