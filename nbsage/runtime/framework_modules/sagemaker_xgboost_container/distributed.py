"""Stand-in for `sagemaker_xgboost_container.distributed`: rabit_run, over nbsage's collective.

The container starts a Rabit tracker on the first host and runs `exec_fun(**args)` inside it; here
nbsage.algorithms.distributed does the same from SM_HOSTS, SM_CURRENT_HOST, MASTER_ADDR and
MASTER_PORT (the tracker on the first host), so `xgb.train` in exec_fun trains one model from
every host's data. On one host exec_fun is simply called."""


def rabit_run(exec_fun, args, include_in_training=True, hosts=None, current_host=None, first_port=None,
              second_port=None, max_connect_attempts=None, connect_retry_timeout=3, update_rabit_args=False):
    """Run exec_fun(**args) in the hosts' collective; with update_rabit_args, args gets is_master."""
    from nbsage.algorithms import distributed
    cluster = distributed.cluster()
    if not include_in_training:
        raise RuntimeError(f"{cluster.current_host} has no training data; nbsage's rabit_run needs data on every "
                           "host (use S3DataDistributionType FullyReplicated or give each host a shard)")
    with distributed.xgboost_collective(cluster):
        call_args = dict(args)
        if update_rabit_args:
            call_args["is_master"] = cluster.is_master
        return exec_fun(**call_args)


def __getattr__(name):
    import nbsage.runtime.framework_modules as fm
    raise fm.missing("sagemaker_xgboost_container.distributed", name, "use rabit_run, or xgboost.collective")
