# Every run that did not end in success, and two days without any run, are heard of:
# the runner prints each interval's report, whose last line is "JOB: OUTCOME in N s"
# (docs/JOBS.md), to its console log in the environment's Log Analytics workspace.

resource "azurerm_monitor_action_group" "runner" {
  count               = length(var.alert_emails) > 0 ? 1 : 0
  name                = "${var.name}-runner"
  resource_group_name = var.resource_group_name
  short_name          = substr(replace("${var.name}run", "-", ""), 0, 12)
  dynamic "email_receiver" {
    for_each = var.alert_emails
    content {
      name          = "email-${email_receiver.key}"
      email_address = email_receiver.value
    }
  }
  tags = var.tags
}

locals {
  action_groups = concat(
    [for g in azurerm_monitor_action_group.runner : g.id],
    var.action_group_id == null ? [] : [var.action_group_id],
  )
  reports = "ContainerAppConsoleLogs_CL | where ContainerName_s == \"runner\""
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "not_successful" {
  name                 = "${var.name}-runner-not-successful"
  resource_group_name  = var.resource_group_name
  location             = var.location
  description          = "An offsite interval ended failed, with warnings, or outside its windows: its report is in the runner's console log."
  severity             = 1
  scopes               = [var.log_analytics_workspace_id]
  evaluation_frequency = "PT15M"
  window_duration      = "PT15M"
  criteria {
    query                   = "${local.reports} | where Log_s matches regex @\": (failed|warning|deferred) in [0-9.]+ s$\""
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0
  }
  action {
    action_groups = local.action_groups
  }
  tags = var.tags
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "no_run" {
  name                 = "${var.name}-runner-no-run"
  resource_group_name  = var.resource_group_name
  location             = var.location
  description          = "No offsite interval has ended for two days: the runner does not start, or dies before its report."
  severity             = 1
  scopes               = [var.log_analytics_workspace_id]
  evaluation_frequency = "PT1H"
  window_duration      = "P2D"
  criteria {
    query                   = "${local.reports} | where Log_s matches regex @\": (success|failed|warning|deferred) in [0-9.]+ s$\""
    time_aggregation_method = "Count"
    operator                = "LessThan"
    threshold               = 1
  }
  action {
    action_groups = local.action_groups
  }
  tags = var.tags
}
