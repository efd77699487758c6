; Inno Setup script: a per-user installer for the PyInstaller bundle (no administrator rights).
;   make package                      (on Windows: builds dist\tooncrafter-studio\)
;   iscc packaging\windows\tooncrafter-studio.iss   -> dist\ToonCrafterStudio-Setup-0.1.0.exe
; The ToonCrafter engine (torch) is NOT in the installer: the app installs it on request into
; %LOCALAPPDATA%\ToonCrafterStudio\ToonCrafterStudio\engine-env; uninstalling offers to remove it.

#define AppName "ToonCrafter Studio"
#define AppVersion "0.1.0"
#define AppExe "tooncrafter-studio.exe"
#define Root "..\.."

[Setup]
AppId={{5B7C4E0A-5F0B-4E0D-9C61-7A3D6A1E2B11}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=ToonCrafter Studio
DefaultDirName={localappdata}\Programs\ToonCrafterStudio
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Root}\dist
OutputBaseFilename=ToonCrafterStudio-Setup-{#AppVersion}
SetupIconFile={#Root}\tooncrafter_studio\resources\icons\tooncrafter-studio.ico
UninstallDisplayIcon={app}\{#AppExe}
LicenseFile={#Root}\LICENSE
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Files]
Source: "{#Root}\dist\tooncrafter-studio\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{userdesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop shortcut"; Flags: unchecked

[Registry]
; "Open in ToonCrafter Studio" on a project folder, and "Open with" for its project.json (the app is
; offered, never made the default for every .json): the path arrives as `tooncrafter-studio.exe PATH`.
Root: HKCU; Subkey: "Software\Classes\Directory\shell\ToonCrafterStudio"; ValueType: string; ValueName: ""; ValueData: "Open in {#AppName}"; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\Directory\shell\ToonCrafterStudio\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKCU; Subkey: "Software\Classes\ToonCrafterStudio.Project"; ValueType: string; ValueName: ""; ValueData: "{#AppName} project"; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\ToonCrafterStudio.Project\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""
Root: HKCU; Subkey: "Software\Classes\.json\OpenWithProgids"; ValueType: string; ValueName: "ToonCrafterStudio.Project"; ValueData: ""; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; the engine environment and the uv cache are large: removed only if the user agrees (see [Code])

[Code]
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var Data: String;
begin
  if CurUninstallStep = usPostUninstall then begin
    Data := ExpandConstant('{localappdata}\ToonCrafterStudio\ToonCrafterStudio');
    if DirExists(Data + '\engine-env') and
       (MsgBox('Also remove the ToonCrafter engine (torch, several GB) and downloaded models in ' + Data + '?',
               mbConfirmation, MB_YESNO) = IDYES) then
      DelTree(Data, True, True, True);
  end;
end;
