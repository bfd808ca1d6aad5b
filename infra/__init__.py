"""Infrastructure of the crowd marketplace: CloudFormation template, deploy helpers and the local AWS harness."""
