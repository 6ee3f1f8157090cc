-- Growth analytics: a user's analytics data in export_my_data() (36); erasure is by account deletion (71, 74).
-- Events keep serving their organization without the user; cohorts and attribution go with the user.

-- What the analytics domain holds about a user, in every organization: the events that carry their user id (props
-- already redacted, IP truncated), their cohort rows and their attribution. A visitor's anonymous_id history is not
-- theirs to export: nothing ties it to an account but the events that carry both, which are included.
create function private.analytics_personal_data(uid uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'analytics_events', (select coalesce(jsonb_agg(to_jsonb(e) order by e.occurred_at, e.event_id), '[]')
                         from public.analytics_events e where e.user_id = uid),
    'analytics_cohorts', (select coalesce(jsonb_agg(to_jsonb(c) order by c.acquired_at), '[]')
                          from public.cohorts c where c.user_id = uid),
    'analytics_attribution', (select coalesce(jsonb_agg(to_jsonb(u) order by u.first_touch_at), '[]')
                              from public.utm_tracks u where u.user_id = uid))
$$;
comment on function private.analytics_personal_data(uuid) is 'The user''s analytics events, cohort rows and attribution, for export_my_data(). Not granted to API roles.';
