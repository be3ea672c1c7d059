raise ImportError("sagemaker_containers.beta (framework encoders/workers for serving) is not provided by nbsage's "
                  "stand-in for sagemaker_containers; define input_fn/output_fn with json/numpy in your script")
