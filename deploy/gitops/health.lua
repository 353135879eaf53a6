-- Argo CD health check for Contacts, DingTalkBots and ContactGroups
-- (alerting.contacts.dev). argocd-cm.yaml installs it for the three kinds.
-- Healthy: Ready. Degraded: Stalled, i.e. it cannot become Ready without a change
-- (a fixed field, a freed key, a Secret, room in the quota). Progressing: no verdict
-- on the current generation yet, or a group waiting for its members.
hs = {status = "Progressing", message = "waiting for the alert-contacts operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "the operator has not yet acted on generation " .. tostring(obj.metadata.generation)
  return hs
end
local ready, stalled
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then ready = condition end
  if condition.type == "Stalled" then stalled = condition end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "") .. ": " .. (stalled.message or "")
elseif ready ~= nil then
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
end
return hs
