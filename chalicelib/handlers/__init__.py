"""Command handlers: plain functions over the ports in a Platform, one module per capability.

    platform        the Platform (ports, caches) and the reads every handler shares
    accounts        credentials: sign-in, open, rotate, revoke, worker registration
    jobs            quotes, posting and ingest, progress, stop, promote, results, reports
    uploads         upload targets for item files, and the ingest of a file in byte ranges
    tasks           offers, leasing, submitting and releasing tasks
    quality         gold scoring and blocks, workers' accuracy, replacement slots
    rounds          counting, starting aggregation, the deadline sweeper, a round's end
    redundancy      adaptive redundancy (loads numpy; never imported by the API routes)
    payments        reviews, automatic approval, bonuses, earnings
    qualifications  cohorts and qualification tests

Pure rules (pricing, validation, leasing policy, quality maths, aggregation, phases) stay in
chalicelib.domain; how things look on the wire is chalicelib.api.views'.
"""
