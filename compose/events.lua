-- The lab's event feed for Orthanc (dicomkit/labevents.py documents the format): one JSON
-- line per worklist C-FIND, study C-FIND, stored instance and HTTP request, no patient data.
-- The native engine prepends EVENTS_PATH = <the feed file> and names this in "LuaScripts";
-- in the docker lab the feed folder is mounted at /var/lib/dicomkit/feed (docker-compose.yml).
EVENTS_PATH = EVENTS_PATH or "/var/lib/dicomkit/feed/events.jsonl"

-- The only query values written; any other key is listed by tag in "other_keys".
local RECORDED = {
  ["0008,0052"] = "QueryRetrieveLevel", ["0008,0050"] = "AccessionNumber",
  ["0008,0060"] = "Modality", ["0008,0061"] = "ModalitiesInStudy", ["0008,0020"] = "StudyDate",
  ["0040,0001"] = "ScheduledStationAETitle", ["0040,0002"] = "ScheduledProcedureStepStartDate",
  ["0040,0010"] = "ScheduledStationName",
}
local PROBE_HEADER = "x-dicomkit-probe"  -- the tutor's own looks: left out

local function emit(event)
  event["t"] = os.date("!%Y-%m-%dT%H:%M:%S") .. "+00:00"
  local f = io.open(EVENTS_PATH, "a")
  if f then
    f:write(DumpJson(event, true) .. "\n")  -- one line, appended whole when closed
    f:close()
  end
end

local function collect(query, keys, others)
  for tag, value in pairs(query) do
    if type(value) == "table" then
      for _, item in ipairs(value) do collect(item, keys, others) end
    elseif tag ~= "0008,0005" and value ~= "" then
      if RECORDED[tag] then keys[RECORDED[tag]] = value else table.insert(others, tag) end
    end
  end
end

local function find_event(service, query, origin)
  local keys, others = {}, {}
  collect(query, keys, others)
  local event = { service = service, calling = origin["RemoteAet"],
                  called = origin["CalledAet"], keys = keys, other_keys = others }
  if service == "find" then event["level"] = query["0008,0052"] or "" end
  emit(event)
end

function IncomingFindRequestFilter(query, origin)
  pcall(find_event, "find", query, origin)
  return query
end

function IncomingWorklistRequestFilter(query, origin)
  pcall(find_event, "mwl-find", query, origin)
  return query
end

function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin["RequestOrigin"] == "DicomProtocol" then
    pcall(emit, { service = "store", calling = origin["RemoteAet"], called = origin["CalledAet"],
                  sop_instance_uid = tags["SOPInstanceUID"], status = 0 })
  end
end

function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  if httpHeaders[PROBE_HEADER] == nil then
    pcall(emit, { service = "http", calling = ip, called = "", method = method, path = uri })
  end
  return true
end
