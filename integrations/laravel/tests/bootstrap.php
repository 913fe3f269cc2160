<?php

// Without Composer: Debian's Laravel components and Guzzle (php-laravel-framework,
// php-guzzlehttp-guzzle), and the package's own PSR-4 autoloading as composer.json declares it.
// With Composer, vendor/autoload.php does all of this.
if (is_file(__DIR__ . '/../vendor/autoload.php')) {
    require __DIR__ . '/../vendor/autoload.php';

    return;
}
require_once 'Illuminate/autoload.php';
require_once 'GuzzleHttp/autoload.php';

spl_autoload_register(function (string $class): void {
    $roots = ['Tidings\\Laravel\\Tests\\' => __DIR__ . '/', 'Tidings\\Laravel\\' => __DIR__ . '/../src/'];
    foreach ($roots as $prefix => $dir) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }

            return;
        }
    }
});

// The compiled views and pages of tests/TestCase.php, removed when the suite ends.
register_shutdown_function(function (): void {
    $dir = sys_get_temp_dir() . '/tidings-laravel-' . getmypid();
    if (is_dir($dir)) {
        $files = new RecursiveIteratorIterator(
            new RecursiveDirectoryIterator($dir, FilesystemIterator::SKIP_DOTS),
            RecursiveIteratorIterator::CHILD_FIRST
        );
        foreach ($files as $file) {
            $file->isDir() ? rmdir($file->getPathname()) : unlink($file->getPathname());
        }
        rmdir($dir);
    }
});
