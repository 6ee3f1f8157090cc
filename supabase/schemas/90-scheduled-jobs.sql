-- Scheduled jobs (pg_cron) and what spans domains.
-- Partition upkeep, ledger cleanup and privacy retention; times are UTC.

-- pg_cron keeps partitions two (in fact three) months ahead and applies retention. Times are UTC.

select private.ensure_monthly_partitions(1, 3);

select cron.schedule('partition-upkeep', '15 0 * * *', $$select private.ensure_monthly_partitions(1, 3)$$);

-- Keep the Stripe event ledger for 90 days (Stripe stops retrying after 3 and resends from its Dashboard for 30);
-- a problem nobody replayed by then goes too, and with it the payload it kept (public.billing_sync_problems).
select cron.schedule('stripe-event-ledger-retention', '40 3 * * *',
  $$delete from private.stripe_events where received_at < now() - interval '90 days'$$);

-- Nightly privacy retention (after partition upkeep at 00:15): the global policies, then each user's own setting.
select cron.schedule('privacy-retention', '30 2 * * *', $$select public.cleanup_retention_data()$$);
select cron.schedule('privacy-user-retention', '45 2 * * *', $$select public.cleanup_telemetry_by_retention()$$);

-- Workflows (45-47): every minute, executions past their deadline time out (and runs whose last lease expired fail),
-- scheduled workflows start at their cron times (each occurrence once), approvals escalate and expire.
select cron.schedule('workflow-deadlines', '* * * * *', $$select private.expire_workflow_executions()$$);
select cron.schedule('workflow-schedules', '* * * * *', $$select private.start_scheduled_workflows()$$);
select cron.schedule('approval-escalation', '* * * * *', $$select private.escalate_approval_requests()$$);
select cron.schedule('approval-expiry', '* * * * *', $$select private.expire_approval_requests()$$);

-- Work management (53): every 15 minutes, open tasks due within 24 hours notify their assignee and watchers (once per
-- task and due date).
select cron.schedule('work-due-soon-notifications', '*/15 * * * *', $$select private.notify_tasks_due_soon()$$);
-- Growth analytics (73): every night the rollups of the last 3 days (and today, in every organization's time zone)
-- are recomputed, so late events are picked up; older days are recomputed on demand. Cohorts and attribution are kept
-- by upsert_events() as events arrive (74; private.rebuild_attribution() is the explicit repair).
select cron.schedule('analytics-recompute', '15 3 * * *',
  $$select public.recompute_metrics_daily(current_date - 3, current_date)$$);
