// Flamenco 3 job type "tooncrafter": in-betweening batches of ToonCrafter Studio projects.
// The same file for every project and batch: install it once in the Manager's scripts/ folder.
// Each job names its project, batch and tasks in its settings (submit_flamenco.py sends them).

const JOB_TYPE = {
    label: "ToonCrafter Studio in-betweens",
    settings: [
        { key: "project_dir", type: "string", subtype: "dir_path", required: true,
          description: "The ToonCrafter Studio project folder, as the Workers see it" },
        { key: "batch", type: "string", required: true, description: "The batch id of this export" },
        { key: "executable", type: "string", required: true, default: "tooncrafter-studio",
          description: "How the Workers start the CLI" },
        { key: "executable_args", type: "string", default: "[]", visible: "submission",
          description: "JSON list of words after the executable (e.g. [\"-m\", \"tooncrafter_studio\"])" },
        { key: "tasks", type: "string", required: true, visible: "submission",
          description: "JSON list of {name, pair, seed, task_id}" },
        { key: "options", type: "string", default: "[]", visible: "submission",
          description: "JSON list of generate options every task gets" },
        { key: "export_dir", type: "string", subtype: "dir_path", default: "",
          description: "Export the shot here once every task is done (empty: no export task)" },
    ],
};

function jsonList(text, what) {
    const value = JSON.parse(text);
    if (!Array.isArray(value)) {
        throw new Error(what + " must be a JSON list");
    }
    return value;
}

function compileJob(job) {
    const settings = job.settings;
    const executableArgs = jsonList(settings.executable_args, "executable_args");
    const options = jsonList(settings.options, "options");
    const inbetweens = [];
    for (const planned of jsonList(settings.tasks, "tasks")) {
        const task = author.Task(String(planned.name), "misc");
        const args = ["generate", settings.project_dir, "--pair", String(planned.pair),
                      "--seed", String(planned.seed), "--task-id", String(planned.task_id), "--quiet"];
        task.addCommand(author.Command("exec", {
            exe: settings.executable,
            args: executableArgs.concat(args, options),
        }));
        job.addTask(task);
        inbetweens.push(task);
    }
    if (settings.export_dir) {
        const task = author.Task("export", "misc");
        task.addCommand(author.Command("exec", {
            exe: settings.executable,
            args: executableArgs.concat(["export", settings.project_dir, "--out", settings.export_dir,
                                         "--include-pending", "--overwrite"]),
        }));
        for (const before of inbetweens) {
            task.addDependency(before);
        }
        job.addTask(task);
    }
}
