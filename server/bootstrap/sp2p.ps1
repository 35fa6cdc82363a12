# sp2p bootstrap (PowerShell): downloads the sp2p CLI, checks its SHA-256, runs
# `sp2p send` or `sp2p receive`, cleans up.
#
#   & ([scriptblock]::Create((irm @@SP2P_BASE_URL@@/ps))) 'FILE'
#   & ([scriptblock]::Create((irm @@SP2P_BASE_URL@@/ps/r))) 'CODE'
#   $env:SP2P_CODE = 'CODE'; & ([scriptblock]::Create((irm @@SP2P_BASE_URL@@/ps/r)))
#
# One template for both: meant to be served by sp2p-server at /ps (send) and /ps/r (receive)
# with @@SP2P_COMMAND@@ replaced by the mode and @@SP2P_BASE_URL@@ by its base
# URL. Download layout (same as the sh script; os: windows|linux|darwin, arch: amd64|arm64):
#   BASE/dl/sp2p-<os>-<arch>[.exe]          the single-file CLI binary
#   BASE/dl/sp2p-<os>-<arch>[.exe].sha256   "<64 hex digits>  <asset name>"
# The binary runs only if its hash matches; https only (http for a loopback base URL).
# Never adds -allow-relay. Environment changes are undone afterwards, and the script never
# calls `exit`, which would close the user's PowerShell window.

$Sp2pCommand = '@@SP2P_COMMAND@@'

function Invoke-Sp2pBootstrap {
    param([string] $Command, [string[]] $Arguments)
    $ErrorActionPreference = 'Stop'
    $ProgressPreference = 'SilentlyContinue'  # progress bars make Invoke-WebRequest very slow

    if ($Command.StartsWith('@@')) { $Command = $env:SP2P_MODE }  # a local run for development
    if ($Command -notin 'send', 'receive') {
        throw 'sp2p: this script must be served by sp2p-server (or set SP2P_MODE to send or receive)'
    }
    $base = '@@SP2P_BASE_URL@@'
    if ($base.StartsWith('@@')) {
        $base = $env:SP2P_BASE_URL
        if (-not $base) { throw 'sp2p: this script must be served by sp2p-server (or set SP2P_BASE_URL)' }
    }
    $base = $base.TrimEnd('/')
    $uri = [Uri] $base
    if ($uri.Scheme -ne 'https' -and -not ($uri.Scheme -eq 'http' -and $uri.IsLoopback)) {
        throw "sp2p: refusing to download over plain http from $base (https required)"
    }

    $suffix = ''
    if ($IsWindows -or $env:OS -eq 'Windows_NT') { $os = 'windows'; $suffix = '.exe' }
    elseif ($IsMacOS) { $os = 'darwin' }
    elseif ($IsLinux) { $os = 'linux' }
    else { throw 'sp2p: unsupported OS' }

    try { $arch = [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString() }
    catch { $arch = $env:PROCESSOR_ARCHITECTURE }
    switch ($arch.ToLowerInvariant()) {
        { $_ -in 'x64', 'amd64' } { $arch = 'amd64' }
        'arm64' { $arch = 'arm64' }
        default { throw "sp2p: unsupported architecture: $arch" }
    }

    if ($Command -eq 'receive' -and @($Arguments).Count -eq 0 -and -not $env:SP2P_CODE) {
        # The code travels in the environment, never in argv (visible to other users).
        $code = Read-Host 'Transfer code'
        if (-not $code) { throw 'sp2p: no transfer code given' }
    }
    else { $code = $env:SP2P_CODE }

    if ($PSVersionTable.PSVersion.Major -lt 6) {
        [Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12
    }

    $asset = "sp2p-$os-$arch$suffix"
    $tmp = Join-Path ([IO.Path]::GetTempPath()) ('sp2p-' + [Guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $tmp | Out-Null
    $names = 'SP2P_SERVER', 'SP2P_URL', 'SP2P_CODE', 'TMP', 'TEMP', 'TMPDIR'
    $saved = @{}
    foreach ($n in $names) { $saved[$n] = [Environment]::GetEnvironmentVariable($n, 'Process') }
    try {
        Write-Host "Downloading sp2p ($asset)..." -ForegroundColor DarkGray
        $sumFile = Join-Path $tmp 'sp2p.sha256'
        $download = Join-Path $tmp 'sp2p.download'
        $binary = Join-Path $tmp "sp2p$suffix"
        Invoke-WebRequest -UseBasicParsing -Uri "$base/dl/$asset.sha256" -OutFile $sumFile
        $expected = ((Get-Content -Path $sumFile -TotalCount 1) -split '\s+')[0].ToLowerInvariant()
        if ($expected -notmatch '^[0-9a-f]{64}$') { throw "sp2p: malformed checksum from $base/dl/$asset.sha256" }
        Invoke-WebRequest -UseBasicParsing -Uri "$base/dl/$asset" -OutFile $download
        $actual = (Get-FileHash -Algorithm SHA256 -Path $download).Hash.ToLowerInvariant()
        if ($actual -ne $expected) {
            throw "sp2p: checksum mismatch for $asset (expected $expected, got $actual); not running it"
        }
        Move-Item -Path $download -Destination $binary
        if ($os -ne 'windows') { chmod 700 $binary }

        # The binary unpacks itself into TMP/TEMP/TMPDIR: point them at our directory.
        foreach ($n in 'TMP', 'TEMP', 'TMPDIR') { [Environment]::SetEnvironmentVariable($n, $tmp, 'Process') }
        $env:SP2P_SERVER = $base
        $env:SP2P_URL = $base
        if ($code) { $env:SP2P_CODE = $code }
        & $binary $Command @Arguments
        $global:LASTEXITCODE = $LASTEXITCODE
    }
    finally {
        foreach ($n in $names) { [Environment]::SetEnvironmentVariable($n, $saved[$n], 'Process') }
        for ($i = 0; $i -lt 10 -and (Test-Path -LiteralPath $tmp); $i++) {
            # Windows may hold the executable open for a moment after it exits.
            Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
            if (Test-Path -LiteralPath $tmp) { Start-Sleep -Milliseconds 200 }
        }
    }
}

Invoke-Sp2pBootstrap -Command $Sp2pCommand -Arguments $args
